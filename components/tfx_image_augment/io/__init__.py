"""Reading and writing what the doors exchange: the image codec, the record layout, the
quarantine reasons, the completion marker, staged publishing and the reader (TensorFlow only)."""

"""The TFX component (`[tfx]` extra): spec, component and executor."""

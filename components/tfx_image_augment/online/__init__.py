"""The online door: the Keras layer and the portable SavedModel export (base install)."""

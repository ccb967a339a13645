"""From texts to predictions: the one prediction function, batch annotation (local or Ray),
the HTTP server with the Label Studio ML backend, and the opt-in int8 engine."""

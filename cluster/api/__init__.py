"""The HTTP control API: schemas, security wiring, error mapping and the FastAPI app factory."""

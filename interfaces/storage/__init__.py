"""Media storage adapters: where uploaded files live and how their headers are read."""

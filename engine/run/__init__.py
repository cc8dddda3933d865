"""One run of an agenda, in parts with one job each (engine/run/flow.py gives the order)."""

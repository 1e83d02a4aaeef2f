"""The shapes of data and the pure rules over them (no faust, no SQLAlchemy sessions here)."""

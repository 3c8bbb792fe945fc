"""Read models built from the event log (SQL tables kept exactly once); see DESIGN §8."""

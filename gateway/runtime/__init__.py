"""The parts of a running gateway and how they open; it starts no use case (the service layer does)."""

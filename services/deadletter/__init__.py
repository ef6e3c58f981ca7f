"""The dead-letter topic: parking what cannot be used (park), and reading and re-injecting it (reinject)."""

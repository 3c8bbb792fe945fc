"""Everything that talks to the outside world: configuration, files, the command line."""

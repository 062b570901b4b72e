"""`inspection bench`: backend, station and training throughput, with the machine named in every result."""

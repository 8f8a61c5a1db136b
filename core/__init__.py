"""The plumbing every other package stands on: the user-error type, the one registry
mechanism, DDP gathering, per-sample seeding and tensor-layout helpers. It imports none of
the benchmark's other packages."""

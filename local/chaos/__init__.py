"""The chaos suite: seeded, randomised scenarios that drive both simulators and the whole product through the local
host's own components on one simulated clock, with faults of every kind, then check every rule of the sync.

``python -m local.chaos --scenarios 5000`` (``make chaos N=5000``) runs as many as asked and prints the table the
README quotes; ``tests/chaos`` runs 500 of them in ``make test``. A failing scenario prints its seed and the command
that replays it. See docs/durability.md ("The chaos suite").

  clock.py     one simulated time for the product, the broker, the clients' waits and both simulators
  plan.py      the scenario as values: a seed in, a list of steps out (pure)
  world.py     the running product: a single-threaded host (queues pumped, timers fired on the clock), crashes
  faults.py    notification faults (duplicate, delay, reorder, drop) and crash points between steps
  oracle.py    what each rule says the systems must hold once quiet, and the checks
  runner.py    one scenario, many scenarios, and the table
"""

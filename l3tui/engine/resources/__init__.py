"""The seed's Resource Manager: the psutil sampler (sampler.py), the allocation ledger
and reservations (ledger.py), bottleneck findings and upgrade advice (bottlenecks.py), and
the manager that ties them to admission (manager.py). Never imports the scheduler."""

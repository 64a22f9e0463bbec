"""Marketo flow steps handled by the app: "Sync Person to Microsoft", "Change Owner in Microsoft" and "Create Task
in Microsoft", each a Marketo "Call Webhook" step posting to ``/api/marketo/flow/{step}``.

- :mod:`.request`: what each step's body may hold, and what makes two deliveries the same run (pure);
- :mod:`.owners`: the Dynamics user a step names;
- :mod:`.steps`: the three steps against Dynamics;
- :mod:`.runs`: accept (record, then queue), run, and sweep; the run records are :mod:`shared.store.flow_runs`.
"""

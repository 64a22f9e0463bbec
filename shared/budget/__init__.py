"""One budget per external limit, shared by every instance and timer through the state store (docs/budgets.md).

:mod:`.rules` is the whole rule, values in and values out; :mod:`.lanes` is one process's side of it (threads
wait in the process, one of them leases a chunk of calls); ``shared/store/budget.py`` keeps the ledger row.
Marketo (``shared/marketo/budget.py``) and Dataverse (``shared/dataverse/budget.py``) only set the figures.
"""

"""The pure decision core: entities, field mappings, value conversion and the reconcile policy.

Nothing here performs I/O or imports an Azure, HTTP or storage library; every decision is a value that can be
printed, logged and asserted.
"""

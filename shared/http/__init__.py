"""HTTP plumbing shared by the Dataverse and Marketo clients and their simulators."""

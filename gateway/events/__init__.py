"""Events: what taskgate tells others about committed changes, read from the audit trail."""

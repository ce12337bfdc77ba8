"""Rollback executor: permits checked, effects run exactly once (ledger + idempotency keys), receipts chained."""

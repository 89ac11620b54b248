package pgstore

// Shared implements engine.SharedStore: several thumbd processes use one
// PostgreSQL database, so the engine caches only what another process
// cannot change behind its back.
func (d *DB) Shared() bool { return true }

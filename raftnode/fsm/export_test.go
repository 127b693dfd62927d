package fsm

// SetIDLimits sets the id table's bounds (MaxIDs and MaxIDBytes in
// production), so tests can reach them with a few entries.
func (f *FSM) SetIDLimits(entries, bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = idLimits{entries: entries, bytes: bytes}
}

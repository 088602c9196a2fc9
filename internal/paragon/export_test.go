package paragon

// SetSignHook makes every later signature of t call hook first (it may
// block), so a test can hold a signature under way and see who waits for it.
// Call it before t is shared.
func SetSignHook(t *Tokens, hook func()) { t.signHook = hook }

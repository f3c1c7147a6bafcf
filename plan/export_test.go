package plan

// SetWalkHook installs a function the Walker calls before it reads each
// directory ("readdir") and symlink target ("readlink"), with the path
// relative to the root, and returns a function that removes it.
func SetWalkHook(f func(op, rel string)) (restore func()) {
	old := testHook.Swap(&f)
	return func() { testHook.Store(old) }
}

package plan

// SetWalkHook makes w call f before it reads each directory ("readdir")
// and symlink target ("readlink"), with the path relative to the root.
// Call it before the first Next.
func SetWalkHook(w *Walker, f func(op, rel string)) { w.hook = f }

// Package file is the manifest-directory source (--registry DIR): it reads every *.yaml, *.yml
// and *.json file below a directory, has package manifest turn the objects in them into model
// records, and watches the tree so that edits take effect without a restart.
//
// Invariants:
//   - A file that stops parsing, grows past 32 MiB or becomes unreadable (a symlink loop)
//     keeps its last good content; one bad file never empties the snapshot. A file that
//     disappears is dropped.
//   - Snapshot returns an immutable, deterministic view (sorted by file path, then document
//     order); readers never lock and must not mutate it.
//   - Hidden names (".x") are skipped, but symlinks with visible names are followed, so a
//     Kubernetes ConfigMap mount (name -> ..data/name) works, including its ..data swap.
//     Symlinks leading out of the directory are ignored with a warning unless
//     FollowSymlinks.
package file

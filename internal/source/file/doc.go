// Package file is the manifest-directory source (--registry DIR): it reads every *.yaml, *.yml
// and *.json file below a directory, turns the Kubernetes and Istio objects in them into model
// records, and watches the tree so that edits take effect without a restart.
//
// Invariants:
//   - ParseFile is pure and never panics; a file with any error is rejected whole, and the error
//     names the file, the 1-based document index and a line.
//   - A file that stops parsing keeps its last good content; one bad file never empties the
//     snapshot. A file that disappears is dropped.
//   - Snapshot returns an immutable, deterministic view (sorted by file path, then document
//     order); readers never lock and must not mutate it.
//   - Hidden names (".x") are skipped, but symlinks with visible names are followed, so a
//     Kubernetes ConfigMap mount (name -> ..data/name) works, including its ..data swap.
package file

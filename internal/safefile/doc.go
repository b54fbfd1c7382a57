// Package safefile is the one home of how meshdns reads a file that someone outside it controls
// (the registry's manifests, resolv.conf, the VIP state file).
//
// Such a file may be anything by the time it is opened: a FIFO, whose open would wait for a
// writer and block the caller (a start, a watch loop, a shutdown) forever; a device such as
// /dev/zero, which reads without end; or a regular file that grows while it is read. So the
// file is opened without blocking, what was opened (not only the name) must be a regular file,
// and never more than a limit is read. Every error names the path and what is wrong.
package safefile

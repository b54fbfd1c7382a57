// Package resolvconf reads the parts of resolv.conf(5) that meshdns uses: the nameservers it
// forwards to, the search list that drives autopath and gives the client's namespace, and ndots.
//
// It follows glibc where glibc's behaviour is defined: the last "search" or "domain" line wins,
// ndots is capped at 15, lines that cannot be parsed are skipped rather than failing the file.
// Unlike glibc it keeps every nameserver (not only the first three), tolerates leading blanks,
// and strips comments that start anywhere on a line. It does no I/O beyond reading the file it
// is given and never reads the environment (RES_OPTIONS, LOCALDOMAIN).
//
// Invariants of a parsed Config: nameservers carry port 53; search domains are lowercase,
// fully qualified (trailing dot), never the root; 0 <= Ndots <= 15.
package resolvconf

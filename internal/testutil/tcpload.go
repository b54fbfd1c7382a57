package testutil

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// The TCP load of the VIP forwarder's benchmarks: a client's operation on a new connection to
// a server that ServeLoad runs, told apart by the first byte. A ping sends one byte and reads
// it back; a bulk transfer sends its bytes, half-closes, and reads the server's count of the
// bytes it received (8 bytes, big endian, after the half close, so that a forwarder's half
// close in both directions is on the path).

// LoadWait bounds one operation, so that a bug fails a benchmark instead of hanging it.
const LoadWait = 2 * time.Minute

const (
	loadPing = 'p'
	loadBulk = 'b'
)

// ServeLoad serves one connection of PingOnce or BulkOnce and closes it.
func ServeLoad(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(LoadWait))
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	if mode[0] == loadPing {
		c.Write(mode[:])
		io.Copy(io.Discard, c) // until the client closes
		return
	}
	n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 1<<20))
	c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// PingOnce connects with dial, sends one byte, reads it back and closes.
func PingOnce(dial func() (*net.TCPConn, error)) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(LoadWait))
	one := []byte{loadPing}
	if _, err := c.Write(one); err != nil {
		return err
	}
	_, err = io.ReadFull(c, one)
	return err
}

// BulkOnce connects with dial, sends total bytes in writes of buf, half-closes and checks the
// server's count.
func BulkOnce(dial func() (*net.TCPConn, error), buf []byte, total int) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(LoadWait))
	if _, err := c.Write([]byte{loadBulk}); err != nil {
		return err
	}
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := c.Write(buf[:min(len(buf), total-sent)]); err != nil {
			return err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if n := binary.BigEndian.Uint64(got[:]); n != uint64(total) {
		return fmt.Errorf("server read %d bytes, want %d", n, total)
	}
	return nil
}

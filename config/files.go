package config

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

const (
	// maxSecretFileBytes bounds a token or key file: real ones are a few
	// dozen bytes.
	maxSecretFileBytes = 64 << 10
	// maxConfigFileBytes bounds the configuration file: 10 000 instances
	// take about 2 MB.
	maxConfigFileBytes = 64 << 20
)

// readRegularFile reads a regular file of at most limit bytes. A FIFO, a
// device (/dev/zero), a directory or a socket is refused without reading
// it, so that a mistaken path can neither block a reload nor fill memory.
func readRegularFile(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer. It does not
	// change how a regular file reads.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	// The size from stat can be wrong (procfs says 0), so the read is
	// bounded as well.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

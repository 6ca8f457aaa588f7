package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"syscall"

	promcfg "github.com/prometheus/common/config"
)

const (
	// maxSecretFileBytes bounds a token or key file: real ones are a few
	// dozen bytes.
	maxSecretFileBytes = 64 << 10
	// maxHTTPFileBytes bounds the files of the HTTP client settings: CA
	// bundles take a few hundred kilobytes.
	maxHTTPFileBytes = 4 << 20
	// maxConfigFileBytes bounds the configuration file: 10 000 instances
	// take about 2 MB.
	maxConfigFileBytes = 64 << 20
)

// readRegularFile reads a regular file of at most limit bytes. A FIFO, a
// device (/dev/zero), a directory or a socket is refused without reading
// it, so that a mistaken path can neither block a reload nor fill memory.
func readRegularFile(path string, limit int64) ([]byte, error) {
	f, err := openRegularFile(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
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

// openRegularFile opens a regular file that stat says holds at most limit
// bytes.
func openRegularFile(path string, limit int64) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer. It does not
	// change how a regular file reads.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	case fi.Size() > limit:
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkHTTPFiles checks every file the HTTP client settings name (CA and
// client certificates, password and credential files, header files):
// prometheus/common reads them whole, some at every request, so a FIFO
// would block calls forever and /dev/zero would fill memory.
func checkHTTPFiles(cfg promcfg.HTTPClientConfig) error {
	var err error
	walkFiles(reflect.ValueOf(cfg), "", func(field, path string) {
		if err != nil || path == "" {
			return
		}
		var f *os.File
		if f, err = openRegularFile(path, maxHTTPFileBytes); err != nil {
			err = &FieldError{Field: field, Err: err}
			return
		}
		f.Close()
	})
	return err
}

// walkFiles calls fn for every string field whose YAML key ends in _file,
// and every element of a files list, in v, with its YAML path. Walking the
// types rather than listing fields keeps up with new prometheus/common
// settings.
func walkFiles(v reflect.Value, path string, fn func(field, file string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFiles(v.Elem(), path, fn)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkFiles(iter.Value(), join(path, fmt.Sprint(iter.Key())), fn)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			key, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			field := v.Field(i)
			switch {
			case key == "-":
			case key == "" && strings.Contains(opts, "inline"):
				walkFiles(field, path, fn)
			case field.Kind() == reflect.String && strings.HasSuffix(key, "_file"):
				fn(join(path, key), field.String())
			case field.Kind() == reflect.Slice && key == "files":
				for j := range field.Len() {
					fn(fmt.Sprintf("%s[%d]", join(path, key), j), field.Index(j).String())
				}
			default:
				walkFiles(field, join(path, key), fn)
			}
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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

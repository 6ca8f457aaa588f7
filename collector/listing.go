package collector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// A listing's answer is read as a stream, row by row, rather than whole:
// an answer of up to maxListBytes of tiny junk rows, split at once into
// rows and then into values, took gigabytes. What the reading keeps is
// one row at a time (at most maxRowBytes) and the instances kept, at most
// the account's max_instances; rows that are not instances are counted,
// not kept. encoding/json's Decoder cannot do this: it buffers each value
// whole before decoding it (Token too, for a string), so one row, or one
// string, of 64 MiB would be held whole. The stream below only finds where
// each value ends, keeping at most maxRowBytes of it, and leaves decoding a
// row that fits to encoding/json.

// maxRowBytes bounds one row of a listing: an Evolution API v2 row, the
// largest, holds a few kilobytes of settings. A larger row is read to its
// end without being kept, and counted as malformed.
const maxRowBytes = 256 << 10

// errListTooLarge is the read error of a listing answer longer than
// maxListBytes.
var errListTooLarge = fmt.Errorf("body larger than %d bytes", maxListBytes)

// listLimits are what an account allows a listing.
type listLimits struct {
	// max is the most instances kept (max_instances).
	max int
	// prefix is the account's name_prefix: the names found must be valid
	// names with it.
	prefix string
}

// jsonStream reads the JSON values of a listing's body one at a time,
// keeping at most maxRowBytes of each, and checks the instances a decoder
// keeps against the account's limits.
type jsonStream struct {
	r      *bufio.Reader
	lim    listLimits
	redact func(string) string
	raw    []byte // the value read last, reused
	cut    bool   // raw is not the whole value
	// err is the first read error (transport, size limit), which makes
	// the listing fail whatever the decoder makes of the truncated text.
	err error
}

func newJSONStream(r io.Reader, lim listLimits, redact func(string) string) *jsonStream {
	return &jsonStream{r: bufio.NewReaderSize(r, 32<<10), lim: lim, redact: redact}
}

// errSyntax is what the reading says of a body that is not the JSON it
// expects; decoders turn it into a bad response.
var errSyntax = errors.New("not JSON")

func (s *jsonStream) readByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		if err != io.EOF && s.err == nil {
			s.err = err
		}
		return 0, errSyntax
	}
	return c, nil
}

// next returns the next byte that is not white space, consumed.
func (s *jsonStream) next() (byte, error) {
	for {
		c, err := s.readByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

// peek returns the next byte that is not white space, not consumed.
func (s *jsonStream) peek() (byte, error) {
	c, err := s.next()
	if err == nil {
		_ = s.r.UnreadByte()
	}
	return c, err
}

// end checks that nothing but white space follows the value read.
func (s *jsonStream) end() error {
	if _, err := s.next(); err == nil || s.err != nil {
		return errSyntax
	}
	return nil
}

// value reads the next value. raw is its text while it fits in
// maxRowBytes (whole is then set), valid until the next call; a longer
// value is read to its end and not kept. Only the value's bounds are
// checked here: the decoder's json.Unmarshal of raw checks the rest.
func (s *jsonStream) value() (raw []byte, whole bool, err error) {
	s.raw, s.cut = s.raw[:0], false
	c, err := s.next()
	if err != nil {
		return nil, false, err
	}
	s.add(c)
	switch c {
	case '"', '{', '[':
		depth, inString := 0, c == '"'
		if !inString {
			depth = 1
		}
		for depth > 0 || inString {
			if c, err = s.readByte(); err != nil {
				return nil, false, err
			}
			s.add(c)
			switch {
			case inString && c == '\\':
				if c, err = s.readByte(); err != nil {
					return nil, false, err
				}
				s.add(c)
			case c == '"':
				inString = !inString
			case inString:
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				depth--
			}
		}
	case ']', '}', ',', ':':
		return nil, false, errSyntax
	default: // a number, true, false or null: up to the next delimiter
		for {
			c, err := s.r.ReadByte()
			if err != nil {
				if err != io.EOF && s.err == nil {
					s.err = err
				}
				break
			}
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-') {
				_ = s.r.UnreadByte()
				break
			}
			s.add(c)
		}
	}
	return s.raw, !s.cut, nil
}

// add keeps a byte of the value being read, unless it is too long.
func (s *jsonStream) add(c byte) {
	if len(s.raw) < maxRowBytes {
		s.raw = append(s.raw, c)
	} else {
		s.cut = true
	}
}

// array reads an array, calling row with each element (see value). It
// stops at row's first error. A null is an empty array, as json.Unmarshal reads it.
func (s *jsonStream) array(row func(raw []byte, whole bool) error) error {
	if c, err := s.peek(); err == nil && c == 'n' {
		if raw, _, err := s.value(); err != nil || string(raw) != "null" {
			return errSyntax
		}
		return nil
	}
	return s.elements('[', ']', func() error {
		raw, whole, err := s.value()
		if err != nil {
			return err
		}
		return row(raw, whole)
	})
}

// object reads an object, calling member with each key; member reads the
// value, with s.value, s.array or s.object.
func (s *jsonStream) object(member func(key string) error) error {
	return s.elements('{', '}', func() error {
		raw, whole, err := s.value()
		if err != nil {
			return err
		}
		var key string
		if json.Unmarshal(raw, &key) != nil && whole {
			return errSyntax
		}
		if c, err := s.next(); err != nil || c != ':' {
			return errSyntax
		}
		return member(key)
	})
}

// elements reads the elements of an array or object, between open and
// closing and separated by commas, calling each to read each one.
func (s *jsonStream) elements(open, closing byte, each func() error) error {
	if c, err := s.next(); err != nil || c != open {
		return errSyntax
	}
	if c, err := s.peek(); err != nil {
		return err
	} else if c == closing {
		s.next()
		return nil
	}
	for {
		if err := each(); err != nil {
			return err
		}
		c, err := s.next()
		switch {
		case err != nil:
			return err
		case c == closing:
			return nil
		case c != ',':
			return errSyntax
		}
	}
}

// mayHold reports whether a row read whole is an object that may hold
// key, before json.Unmarshal spends its time (and, for a row of another
// type, an error) on each junk row of a listing: tens of millions fit in
// one. encoding/json matches keys without case, and a key may be written
// with escapes: a row with a backslash is always decoded.
func mayHold(raw []byte, whole bool, key string) bool {
	if !whole || len(raw) < 2 || raw[0] != '{' {
		return false
	}
	return bytes.IndexByte(raw, '\\') >= 0 || containsFold(raw, key)
}

// containsFold reports whether s holds key, a lower-case ASCII string,
// in any case.
func containsFold(s []byte, key string) bool {
	for i := 0; i+len(key) <= len(s); i++ {
		j := 0
		for j < len(key) && s[i+j]|0x20 == key[j] {
			j++
		}
		if j == len(key) {
			return true
		}
	}
	return false
}

// keep adds a row's instance to l: counted when the provider says it is
// not watched or when its name cannot be one, kept otherwise. Its texts
// are redacted first: a decoded name may be an escaped echo of the
// account's secret. It fails when l would hold more than max_instances.
func (s *jsonStream) keep(l *Listing, in Listed) error {
	in.Name, in.ID, in.State = s.redact(in.Name), s.redact(in.ID), s.redact(in.State)
	switch {
	case in.Skip != "":
		l.skip(in.Skip)
		return nil
	case config.CheckName(s.lim.prefix+in.Name) != nil:
		l.skip(skipBadName)
		if l.BadName == "" {
			l.BadName = config.QuoteName(in.Name)
		}
		return nil
	case len(l.Instances) >= s.lim.max:
		return newError(ReasonBadResponse, "the listing holds more than %d instances (max_instances)", s.lim.max)
	}
	l.Instances = append(l.Instances, in)
	return nil
}

// skip counts a row left out by reason.
func (l *Listing) skip(reason string) {
	if l.Skipped == nil {
		l.Skipped = map[string]int{}
	}
	l.Skipped[reason]++
}

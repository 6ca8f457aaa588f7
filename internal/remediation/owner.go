package remediation

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Owner shares the instances among the exporter's replicas: each instance
// has exactly one owner among the peers, the same on every replica that
// has the same peer list, and only the owner acts on it. Alertmanager is
// configured to send the remediation webhook to every replica; whichever
// replica a notification reaches, only one of them reboots, and that
// replica's window guard absorbs every resend, including the duplicates
// of a partitioned Alertmanager cluster.
//
// Rendezvous hashing: removing a peer moves only the instances it owned.
type Owner struct {
	self  string
	peers []string
}

// NewOwner returns the sharing for replica self among peers (self
// included). Peers are names, not addresses: any stable strings that are
// the same on every replica (e.g. a StatefulSet's pod names).
func NewOwner(self string, peers []string) (*Owner, error) {
	if self == "" {
		return nil, errors.New("--alertmanager.replica is empty")
	}
	seen := map[string]bool{}
	for _, p := range peers {
		if p == "" || strings.ContainsAny(p, ", ") {
			return nil, fmt.Errorf("--alertmanager.peers: %q is not a name", p)
		}
		if seen[p] {
			return nil, fmt.Errorf("--alertmanager.peers: %q listed twice", p)
		}
		seen[p] = true
	}
	if !seen[self] {
		return nil, fmt.Errorf("--alertmanager.peers does not list this replica, %q", self)
	}
	return &Owner{self: self, peers: slices.Clone(peers)}, nil
}

// OwnerOf is the peer that owns the instance named name.
func (o *Owner) OwnerOf(name string) string {
	var best string
	var bestScore uint64
	for _, p := range o.peers {
		h := fnv.New64a()
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write([]byte(name))
		if s := mix(h.Sum64()); best == "" || s > bestScore {
			best, bestScore = p, s
		}
	}
	return best
}

// mix is splitmix64's finalizer: FNV's last bytes barely reach the high
// bits, and the names of a fleet differ in their last bytes.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Owns says whether this replica owns the instance named name.
func (o *Owner) Owns(name string) bool { return o.OwnerOf(name) == o.self }

// SetOwner makes the engine act only on the instances o gives this
// replica; nil (the default) acts on all.
func (e *Engine) SetOwner(o *Owner) { e.owner.Store(o) }

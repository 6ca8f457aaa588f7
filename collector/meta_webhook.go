package collector

// metaPushed: CONTRACT STUB, to be replaced (helper B).
type metaPushed struct{}

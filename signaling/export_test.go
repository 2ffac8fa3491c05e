package signaling

// Stamping reports whether the layer's packets still carry MID and RID on a connection.
func (l *LayerTrack) Stamping() bool { return l.stamping() }

package amqpconn

import (
	"crypto/tls"
	"fmt"
	"slices"
	"time"
)

// Endpoint is what the handler and the sink both configure: which broker,
// how to reach it, and which exchange. Both Options types map their fields
// onto it, and WithDefaults is the one place their defaults are set.
type Endpoint struct {
	URL          string   // one URL or a comma-separated list; default $AMQP_URL, else DefaultURL
	URLs         []string // several brokers; when set, URL is ignored
	TLS          *tls.Config
	Name         string // connection name
	Exchange     string // default "logs"
	Kind         string // default "fanout"
	Durable      bool
	Heartbeat    time.Duration // default 10s
	WriteTimeout time.Duration // default 10s
	MinBackoff   time.Duration // default 100ms
	MaxBackoff   time.Duration // default 30s
}

// WithDefaults returns e with every zero field set to its default, or an
// error naming what is invalid, never showing the password.
func (e Endpoint) WithDefaults() (Endpoint, error) {
	if len(e.URLs) == 0 {
		u, err := URLFromEnv(e.URL)
		if err != nil {
			return e, err
		}
		e.URLs = SplitURLs(u)
	}
	e.URLs = slices.Clone(e.URLs)
	e.URL = JoinURLs(e.URLs)
	if err := ValidateURLs(e.URLs); err != nil {
		return e, err
	}
	if e.Exchange == "" {
		e.Exchange = "logs"
	}
	if e.Kind == "" {
		e.Kind = "fanout"
	}
	if !ValidKind(e.Kind) {
		return e, fmt.Errorf("unknown exchange kind %q (want fanout, direct, topic or headers)", e.Kind)
	}
	e.Heartbeat = orDefault(e.Heartbeat, 10*time.Second)
	e.WriteTimeout = orDefault(e.WriteTimeout, 10*time.Second)
	e.MinBackoff = orDefault(e.MinBackoff, 100*time.Millisecond)
	e.MaxBackoff = max(orDefault(e.MaxBackoff, 30*time.Second), e.MinBackoff)
	return e, nil
}

// Loop is the endpoint's reconnect loop, over its brokers in turn.
func (e Endpoint) Loop() Loop {
	return Loop{
		Config:  Config{TLS: e.TLS, Name: e.Name, Heartbeat: e.Heartbeat, WriteTimeout: e.WriteTimeout},
		URLs:    e.URLs,
		Backoff: Backoff{Initial: e.MinBackoff, Max: e.MaxBackoff},
	}
}

// ExchangeDecl is the endpoint's exchange, as both sides declare it.
func (e Endpoint) ExchangeDecl() Exchange {
	return Exchange{Name: e.Exchange, Kind: e.Kind, Durable: e.Durable}
}

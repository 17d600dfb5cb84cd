// Package amqpconn holds what the handler and the sink share about talking
// to RabbitMQ: dialing with deadlines, declaring the exchange, classifying the
// broker's refusals, redacting credentials and the reconnect loop.
package amqpconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is used when neither the caller nor AMQP_URL names a broker.
const DefaultURL = "amqp://guest:guest@localhost:5672/"

// URLFromEnv returns url, else $AMQP_URL, else the URL in the file
// $AMQP_URL_FILE names (see ReadURLFile), else DefaultURL.
func URLFromEnv(url string) (string, error) {
	if url != "" {
		return url, nil
	}
	env, file := os.Getenv("AMQP_URL"), os.Getenv("AMQP_URL_FILE")
	switch {
	case env != "" && file != "":
		return "", errors.New("AMQP_URL and AMQP_URL_FILE are both set: unset one")
	case env != "":
		return env, nil
	case file != "":
		return ReadURLFile(file)
	}
	return DefaultURL, nil
}

// ReadURLFile reads a broker URL, or several, from a file: one per line
// or comma-separated, surrounding space ignored. It keeps a password out
// of the command line, the environment and the shell's history. A name
// without a slash is looked up in $CREDENTIALS_DIRECTORY when systemd set
// it (LoadCredential=). Errors name the file, never its contents.
func ReadURLFile(path string) (string, error) {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" && !strings.Contains(path, "/") {
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("broker URL file: %w", err)
	}
	var urls []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			urls = append(urls, line)
		}
	}
	if len(urls) == 0 {
		return "", fmt.Errorf("broker URL file %s is empty", path)
	}
	return strings.Join(urls, ","), nil
}

// Config says how to reach the broker.
type Config struct {
	URL  string
	TLS  *tls.Config // for amqps:// URLs; nil verifies against the system roots
	Name string      // shown as the connection name in the management UI and rabbitmqctl

	// Heartbeat is the AMQP heartbeat; a stalled peer is noticed after about
	// three of them. Zero means 10s.
	Heartbeat time.Duration
	// WriteTimeout bounds every socket write, so a broker that stops reading
	// (a memory alarm, a stalled network) turns into a connection error
	// instead of a writer that hangs. Zero means 10s.
	WriteTimeout time.Duration
	// DialTimeout bounds the TCP connect and the AMQP handshake. Zero means 10s.
	DialTimeout time.Duration
}

// Validate reports whether cfg.URL is a usable AMQP URL. The error never
// shows the password, whatever bytes it holds: it is made from the URL
// with its password redacted, never from the URL itself, since a parser's
// message quotes, escapes or cuts what it shows.
func (cfg Config) Validate() error {
	if _, err := amqp.ParseURI(cfg.URL); err == nil {
		return nil
	}
	shown := Redact(cfg.URL)
	if _, err := amqp.ParseURI(shown); err != nil {
		return fmt.Errorf("invalid AMQP URL %q: %w", shown, plainError(err))
	}
	return fmt.Errorf("invalid AMQP URL %q: the password is not valid in a URL (percent-encode it)", shown)
}

// plainError drops the URL that net/url repeats in its errors: the caller
// shows it already.
func plainError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Conn is an open connection and the socket under it, which Abort can close
// even while a write on it is blocked.
type Conn struct {
	*amqp.Connection
	// Broker is the URL connected to, its password hidden.
	Broker string
	// Failover says whether the connection before was to another broker.
	Failover bool
	sock     net.Conn
}

// Abort closes the socket at once, without the AMQP closing handshake.
func (c *Conn) Abort() {
	if c.sock != nil {
		c.sock.Close()
	}
	c.Connection.Close()
}

// Dial opens a connection, giving up when ctx ends, even halfway through a
// handshake that a stalled broker never answers. Its errors never show the
// password.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	dialTimeout := orDefault(cfg.DialTimeout, 10*time.Second)
	writeTimeout := orDefault(cfg.WriteTimeout, 10*time.Second)
	var sock net.Conn
	var stop func() bool
	props := amqp.NewConnectionProperties()
	if cfg.Name != "" {
		props.SetClientConnectionName(cfg.Name)
	}
	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		tlsCfg = cfg.TLS.Clone() // amqp091 fills in ServerName
	}
	c, err := amqp.DialConfig(cfg.URL, amqp.Config{
		Heartbeat:       orDefault(cfg.Heartbeat, 10*time.Second),
		Properties:      props,
		TLSClientConfig: tlsCfg,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Cleared by amqp091 once the handshake is done.
			if err := conn.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				conn.Close()
				return nil, err
			}
			sock = conn
			// amqp091 takes no context: closing the socket is what ends a
			// handshake in progress when ctx does.
			stop = context.AfterFunc(ctx, func() { conn.Close() })
			return &deadlineConn{Conn: conn, timeout: writeTimeout}, nil
		},
	})
	if stop != nil && !stop() {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		if c != nil {
			c.Close()
		}
		return nil, RedactError(err, cfg.URL)
	}
	return &Conn{Connection: c, Broker: Redact(cfg.URL), sock: sock}, nil
}

// Blocking is the broker's latest word on whether it blocks the connection
// (connection.blocked, during a memory or disk alarm).
type Blocking struct {
	mu     sync.Mutex
	active bool
	reason string
	// C is signalled after every change.
	C chan struct{}
}

// WatchBlocked follows the connection's blocked and unblocked notices on a
// goroutine of its own that ends with the connection. amqp091 drops a
// notice that its listener does not take within a few seconds, and a
// publisher held in a write cannot take it: draining them here means the
// latest one is never lost.
func (c *Conn) WatchBlocked() *Blocking {
	b := &Blocking{C: make(chan struct{}, 1)}
	notices := c.NotifyBlocked(make(chan amqp.Blocking, 1))
	go func() {
		for n := range notices {
			b.mu.Lock()
			b.active, b.reason = n.Active, n.Reason
			b.mu.Unlock()
			select {
			case b.C <- struct{}{}:
			default:
			}
		}
	}()
	return b
}

// State returns whether the broker blocks the connection now, and why.
func (b *Blocking) State() (active bool, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active, b.reason
}

// deadlineConn puts a deadline on every write. amqp091 clears deadlines
// after the handshake because RabbitMQ pushes back through TCP; without one,
// a publish to a blocked broker would wait forever.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Exchange is the exchange both sides declare. The zero Durable and the
// absent auto-delete match the tutorial's exchange_declare(exchange='logs',
// exchange_type='fanout'), so its programs share the exchange with ours.
type Exchange struct {
	Name    string
	Kind    string
	Durable bool
}

// ValidKind reports whether kind is an exchange type the broker knows.
func ValidKind(kind string) bool {
	switch kind {
	case amqp.ExchangeFanout, amqp.ExchangeDirect, amqp.ExchangeTopic, amqp.ExchangeHeaders:
		return true
	}
	return false
}

// Declare declares the exchange on ch; a clash with an existing exchange of
// another kind or durability comes back as a *RefusedError.
func (e Exchange) Declare(ch *amqp.Channel) error {
	err := ch.ExchangeDeclare(e.Name, e.Kind, e.Durable, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("declare exchange %q (%s, durable=%t): %w", e.Name, e.Kind, e.Durable, Classify(err))
	}
	return nil
}

// RefusedError is a refusal by the broker that retrying will not fix until
// someone changes the broker's configuration or ours.
type RefusedError struct {
	Cause string // what to check, in words
	Err   error
}

func (e *RefusedError) Error() string { return e.Cause + ": " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Classify wraps the broker's refusals that retrying cannot fix in a
// *RefusedError naming the likely cause; other errors come back unchanged.
// A 404 (an exchange deleted under us) is not one: declaring it again on
// the next connection fixes it at once.
func Classify(err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return err
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case amqp.AccessRefused:
		if errors.Is(err, amqp.ErrCredentials) || errors.Is(err, amqp.ErrSASL) {
			return &RefusedError{Cause: "access refused: wrong user name or password", Err: err}
		}
		if errors.Is(err, amqp.ErrVhost) {
			return &RefusedError{Cause: "access refused: the virtual host does not exist or the user may not use it", Err: err}
		}
		return &RefusedError{Cause: "access refused: the user lacks permission", Err: err}
	case amqp.PreconditionFailed:
		return &RefusedError{Cause: "precondition failed: it exists with other settings (an exchange's kind or durability, a queue's type or arguments)", Err: err}
	case amqp.NotAllowed:
		return &RefusedError{Cause: "not allowed: does the virtual host exist and may the user use it?", Err: err}
	}
	return err
}

// IsRefused reports whether err is a refusal that retrying cannot fix.
func IsRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

package httpfwd

import (
	"context"
	"time"
)

func (c *conn) serveH2C(ctx context.Context, start time.Time, up *Upstream) bool {
	return c.fail(start, 501, "h2c upstreams are not supported yet", nil)
}

package evloop

import "time"

// The coarse timer. A loop has one connect timeout and one idle timeout for all its pairs, so a
// list in the order the pairs were stamped is also the order of their deadlines: a connecting
// pair goes to the tail of the connecting list when it starts, a relaying pair to the tail of
// the idle list when it moved bytes. A sweep pops expired pairs from the heads and stops at the
// first that is not, so it costs O(expired), never O(open pairs). To spare the list a relink
// for every read, a pair is moved only when its stamp is a tick old; its deadline is then
// counted from the stamp plus a tick, which is never early and at most a tick late.

// pairList is an intrusive doubly linked list of pairs around a sentinel.
type pairList struct {
	head pair // sentinel: head.next is the first, head.prev the last
}

func (l *pairList) init() { l.head.next, l.head.prev = &l.head, &l.head }

func (l *pairList) first() *pair {
	if l.head.next == &l.head {
		return nil
	}
	return l.head.next
}

func (l *pairList) pushBack(p *pair) {
	last := l.head.prev
	p.prev, p.next = last, &l.head
	last.next = p
	l.head.prev = p
}

// unlink takes p out of whatever list holds it; a pair in none is left alone.
func unlink(p *pair) {
	if p.next == nil {
		return
	}
	p.prev.next = p.next
	p.next.prev = p.prev
	p.prev, p.next = nil, nil
}

// backoff is a listener taken out of epoll after an accept error, until resume.
type backoff struct {
	lis    *listener
	resume time.Duration
}

// acceptBackoff is how long a listener rests after an accept error such as EMFILE: long enough
// not to spin on a descriptor shortage, short enough to pick up again soon after it passes.
const acceptBackoff = 50 * time.Millisecond

// touch records that p moved bytes now, moving it to the idle list's tail once its stamp is a
// tick old.
func (l *loop) touch(p *pair) {
	if l.now-p.stamp >= l.tick {
		unlink(p)
		p.stamp = l.now
		l.idle.pushBack(p)
	}
}

// sweep ends the pairs whose connect or idle deadline passed and resumes rested listeners.
func (l *loop) sweep() {
	l.sweepHeads()
	l.expireConns()
	for p := l.connecting.first(); p != nil && p.stamp+l.connectTimeout <= l.now; p = l.connecting.first() {
		l.stats.connectTimeouts.Add(1)
		l.connectFailed(p, ErrConnectTimeout) // a retry goes to the connecting list's tail

	}
	for p := l.idle.first(); p != nil && p.stamp+l.tick+l.idleTimeout <= l.now; p = l.idle.first() {
		l.stats.idleTimeouts.Add(1)
		l.finish(p, nil, ErrIdleTimeout)
	}
	if len(l.resting) > 0 {
		due := l.resting
		l.resting = nil // resumeListener may rest a listener again
		for _, b := range due {
			if b.resume <= l.now {
				l.resumeListener(b.lis)
			} else {
				l.resting = append(l.resting, b)
			}
		}
	}
	l.nextSweep = l.now + l.tick
}

// nextDeadline is when the loop must look at its timers again, or -1 when none is pending.
func (l *loop) nextDeadline() time.Duration {
	next := time.Duration(-1)
	earliest := func(d time.Duration) {
		if next < 0 || d < next {
			next = d
		}
	}
	if p := l.heads.first(); p != nil {
		earliest(p.start + l.headTimeout)
	}
	if p := l.connecting.first(); p != nil {
		earliest(p.stamp + l.connectTimeout)
	}
	if p := l.idle.first(); p != nil {
		earliest(p.stamp + l.tick + l.idleTimeout)
	}
	if c := l.timers.top(); c != nil {
		earliest(c.at)
	}
	for _, b := range l.resting {
		earliest(b.resume)
	}
	if next >= 0 {
		next = max(next, l.nextSweep)
	}
	return next
}

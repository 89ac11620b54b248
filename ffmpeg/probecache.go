package ffmpeg

import (
	"container/list"
	"sync"
)

// ProbeCache keeps what Probe and Index learned about sources, under a key
// that names a source's content (its URL with the validators its origin
// sent, a local file's identity and modification time, an upload's hash),
// so that a source read again unchanged is neither probed nor indexed
// again: test suites make thumbnails of the same few clips all day. Least
// recently used entries go first, beyond a number of entries and a number
// of indexed frames (about 21 bytes each).
type ProbeCache struct {
	maxEntries int
	maxFrames  int

	mu     sync.Mutex
	ll     *list.List // of *probeEntry, most recently used first
	byKey  map[string]*list.Element
	frames int // indexed frames held
}

type probeEntry struct {
	key   string
	media Media
	index *FrameIndex
}

// DefaultProbeCacheFrames bounds the indexed frames a ProbeCache holds:
// about 40 MB, some twenty hour-long sources.
const DefaultProbeCacheFrames = 2_000_000

// NewProbeCache returns a cache of up to entries sources (none: a cache
// that keeps nothing) and up to maxFrames indexed frames (0: the default).
func NewProbeCache(entries, maxFrames int) *ProbeCache {
	if maxFrames <= 0 {
		maxFrames = DefaultProbeCacheFrames
	}
	return &ProbeCache{maxEntries: max(entries, 0), maxFrames: maxFrames, ll: list.New(), byKey: map[string]*list.Element{}}
}

// Get returns what is known of the source key: its description and, when it
// was indexed, its index (nil otherwise).
func (c *ProbeCache) Get(key string) (Media, *FrameIndex, bool) {
	if c == nil || key == "" {
		return Media{}, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return Media{}, nil, false
	}
	c.ll.MoveToFront(el)
	e := el.Value.(*probeEntry)
	return e.media, e.index, true
}

// Put records the description of the source key, and its index unless x
// is nil (an index recorded before is then kept).
func (c *ProbeCache) Put(key string, m Media, x *FrameIndex) {
	if c == nil || key == "" || c.maxEntries == 0 {
		return
	}
	if x != nil && x.Len() > c.maxFrames {
		x = nil // larger than the whole cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*probeEntry)
		e.media = m
		if x != nil {
			c.frames += x.Len() - e.index.len()
			e.index = x
		}
		c.ll.MoveToFront(el)
	} else {
		c.byKey[key] = c.ll.PushFront(&probeEntry{key: key, media: m, index: x})
		c.frames += x.len()
	}
	for c.ll.Len() > c.maxEntries || c.frames > c.maxFrames {
		el := c.ll.Back()
		e := el.Value.(*probeEntry)
		c.ll.Remove(el)
		delete(c.byKey, e.key)
		c.frames -= e.index.len()
	}
}

// Len returns the number of sources held.
func (c *ProbeCache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// len is Len for a possibly nil index.
func (x *FrameIndex) len() int {
	if x == nil {
		return 0
	}
	return x.Len()
}

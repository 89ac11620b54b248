package netguard

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzGuard feeds the guard arbitrary URLs, as a query's source or
// callback_url. It must never panic; a host that is an address the guard
// refuses must be refused before any connection; and ShowURL must never
// show the URL's password or query.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8080/clip.mp4",
		"http://[::ffff:127.0.0.1]/x",
		"http://[fe80::1%25eth0]:80/",
		"https://u:PASS@example.com/hook?auth=TOKEN#frag",
		"http://LOCALHOST./",
		"http://169.254.169.254/latest/meta-data/",
		"http://0x7f.1/",
		"http://2130706433/",
		"http://[::]/",
		"s3://KEY:SECRET@10.0.0.1:9000/b/k",
	} {
		f.Add(s)
	}
	g := New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	f.Fuzz(func(t *testing.T, raw string) {
		shown := ShowURL(raw)
		u, err := url.Parse(raw)
		if err != nil {
			if shown != "[unparsable URL]" {
				t.Fatalf("ShowURL(%q) = %q for a URL that does not parse", raw, shown)
			}
			return
		}
		host := u.Hostname()
		blocked := g.CheckHost(host)
		if ip, err := netip.ParseAddr(host); err == nil {
			kind := g.Refuses(ip.WithZone(""))
			if (kind != "") != (blocked != nil) {
				t.Fatalf("CheckHost(%q) = %v, but Refuses says %q", host, blocked, kind)
			}
		}
		if blocked != nil {
			if _, ok := AsBlocked(blocked); !ok || !strings.Contains(blocked.Error(), Setting) {
				t.Fatalf("CheckHost(%q) = %v, want a *BlockedError naming the settings", host, blocked)
			}
		}
		// What ShowURL returns carries no query or fragment (and, below, no
		// password; a path such as "//0@" may read as userinfo). (It may
		// not parse again: url.URL.String escapes a zone's odd bytes in a
		// way url.Parse refuses.)
		rest, hadQuery := strings.CutSuffix(shown, "?…")
		if s, err := url.Parse(rest); err == nil && (s.RawQuery != "" || s.Fragment != "") {
			t.Fatalf("ShowURL(%q) = %q keeps userinfo, query or fragment", raw, shown)
		}
		if hadQuery != (u.RawQuery != "" || u.ForceQuery) {
			t.Fatalf("ShowURL(%q) = %q: the query mark is wrong", raw, shown)
		}
		if p, ok := u.User.Password(); ok && len(p) >= 6 && !strings.Contains(u.Host+u.Path, p) && strings.Contains(shown, p) {
			t.Fatalf("ShowURL(%q) = %q shows the password", raw, shown)
		}
	})
}

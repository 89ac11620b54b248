package netguard

import "net/url"

// ShowURL returns raw without its userinfo, query and fragment, which may
// hold credentials, tokens or signatures: the form of a URL fit for
// messages, warnings and logs. A URL that had a query ends in "?…".
func ShowURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	u.User = nil
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.String()
	if q {
		s += "?…"
	}
	return s
}

package storage

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// S3URL is a parsed s3://[KEY:SECRET@]host[:port]/bucket/key URL.
type S3URL struct {
	Host      string // host name or IP address, without brackets or port
	Port      int    // 0 when the URL named none
	Bucket    string
	Key       string // object key; empty, or ending in "/", for a folder
	AccessKey string // from the URL's userinfo, percent-decoded; usually empty
	SecretKey string // from the URL's userinfo, percent-decoded; usually empty
}

// ParseS3URL parses raw as s3://host[:port]/bucket/key.
//
// The key is everything after the bucket's slash, taken literally as the AWS
// tools do: no percent-decoding, and "?" or "#" are part of it. It may be
// empty or end in "/" to name a folder. Credentials may be given as userinfo,
// s3://KEY:SECRET@host/bucket/key, percent-encoded where they hold "/", "@" or
// ":"; they are decoded. An unencoded "/" in the secret is tolerated (see
// splitUserinfo). Error messages quote nothing from the URL's authority or
// bucket, lest they repeat part of a secret.
func ParseS3URL(raw string) (S3URL, error) {
	var u S3URL
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return u, errors.New("storage: not an s3:// URL (want s3://host[:port]/bucket/key)")
	}
	if !strings.EqualFold(scheme, "s3") {
		// The scheme comes before any userinfo, so it is safe to name.
		return u, fmt.Errorf("storage: URL scheme %q is not s3 (want s3://host[:port]/bucket/key)", scheme)
	}
	userinfo, rest, hasUserinfo := splitUserinfo(rest)
	authority, path, _ := strings.Cut(rest, "/")
	if hasUserinfo {
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if u.AccessKey, err = url.PathUnescape(user); err != nil {
			return S3URL{}, errors.New("storage: s3 URL has a badly percent-encoded access key")
		}
		if u.SecretKey, err = url.PathUnescape(pass); err != nil {
			return S3URL{}, errors.New("storage: s3 URL has a badly percent-encoded secret key")
		}
		if u.AccessKey == "" || !hasPass || u.SecretKey == "" {
			return S3URL{}, errors.New("storage: s3 URL credentials must be KEY:SECRET, both non-empty")
		}
	}
	if err := u.parseHostPort(authority); err != nil {
		return S3URL{}, err
	}
	u.Bucket, u.Key, _ = strings.Cut(path, "/")
	if u.Bucket == "" {
		return S3URL{}, errors.New("storage: s3 URL has no bucket (want s3://host[:port]/bucket/key)")
	}
	if strings.ContainsAny(u.Bucket, " \t\r\n?#%\\@:") {
		// Not quoted: a misplaced secret could be what is in it.
		return S3URL{}, errors.New("storage: s3 URL has an invalid bucket name")
	}
	return u, nil
}

// splitUserinfo splits what follows "://" into the userinfo, if any, and
// the rest. Userinfo normally ends at the last "@" before the first "/". But
// AWS secrets often hold "/", and users rarely percent-encode them; so when
// what precedes the first "/" looks like KEY:SECRET-fragment rather than
// host:port, or the would-be bucket holds an "@" (which bucket names cannot),
// the userinfo runs to the first "@" after that "/".
func splitUserinfo(s string) (userinfo, rest string, ok bool) {
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		slash = len(s)
	}
	authority := s[:slash]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		return authority[:at], s[at+1:], true
	}
	if slash == len(s) || strings.HasPrefix(authority, "[") || !strings.Contains(authority, ":") {
		return "", s, false
	}
	_, port, _ := strings.Cut(authority, ":")
	bucket, _, _ := strings.Cut(s[slash+1:], "/")
	if port != "" && strings.Trim(port, "0123456789") == "" && !strings.Contains(bucket, "@") {
		return "", s, false // host:port/bucket
	}
	if at := strings.IndexByte(s[slash:], '@'); at >= 0 {
		at += slash
		return s[:at], s[at+1:], true
	}
	return "", s, false
}

// parseHostPort fills Host and Port from host, host:port, [ipv6] or
// [ipv6]:port.
func (u *S3URL) parseHostPort(hostport string) error {
	if hostport == "" {
		return errors.New("storage: s3 URL has no host (want s3://host[:port]/bucket/key)")
	}
	host, port := hostport, ""
	bracketed := strings.HasPrefix(hostport, "[")
	switch {
	case bracketed:
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return errors.New("storage: s3 URL has an unterminated [IPv6] host")
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" {
			if port[0] != ':' {
				return errors.New("storage: s3 URL has junk after its [IPv6] host")
			}
			port = port[1:]
			if port == "" {
				return errors.New("storage: s3 URL has an empty port")
			}
		}
	case strings.Count(hostport, ":") == 1:
		host, port, _ = strings.Cut(hostport, ":")
		if port == "" {
			return errors.New("storage: s3 URL has an empty port")
		}
	case strings.Count(hostport, ":") > 1:
		return errors.New("storage: s3 URL host has several ':'; write an IPv6 address as [addr]")
	}
	if host == "" {
		return errors.New("storage: s3 URL has no host (want s3://host[:port]/bucket/key)")
	}
	if bracketed {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() || ip.Zone() != "" {
			return errors.New("storage: s3 URL has an invalid [IPv6] host")
		}
	} else if !validHostName(host) {
		return errors.New("storage: s3 URL has an invalid host")
	}
	u.Host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return errors.New("storage: s3 URL has an invalid port (want 1-65535)")
		}
		u.Port = n
	}
	return nil
}

// validHostName reports whether host is a DNS name or an IPv4 address:
// letters, digits, '-', '_' and '.'.
func validHostName(host string) bool {
	for _, c := range []byte(host) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// HostPort returns host or host:port, bracketing an IPv6 address.
func (u S3URL) HostPort() string {
	if u.Port != 0 {
		return net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
	}
	if strings.Contains(u.Host, ":") {
		return "[" + u.Host + "]"
	}
	return u.Host
}

// String returns the URL as s3://host[:port]/bucket/key. It never includes
// the credentials.
func (u S3URL) String() string {
	return "s3://" + u.HostPort() + "/" + u.Bucket + "/" + u.Key
}

// KeyHint returns a form of an access key id fit for logs and errors: its
// first four characters and an ellipsis ("AKIA…"), or "" for no key.
func KeyHint(key string) string {
	switch {
	case key == "":
		return ""
	case len(key) < 8:
		return "…"
	}
	return key[:4] + "…"
}

// StripUserinfo returns raw without the userinfo of its authority, if any,
// found as ParseS3URL finds it.
func StripUserinfo(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if strings.Contains(raw, "@") {
			return "[unparsable URL]"
		}
		return raw
	}
	_, rest, _ = splitUserinfo(rest)
	return scheme + "://" + rest
}

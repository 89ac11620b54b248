package storage

import (
	"strings"
	"testing"
)

// FuzzParseS3URL feeds ParseS3URL arbitrary URLs. It must never panic; a
// URL it accepts must print (String) as a URL that parses to the same
// object; and neither String nor StripUserinfo may show its secret.
func FuzzParseS3URL(f *testing.F) {
	for _, s := range []string{
		"s3://127.0.0.1:7070/thumbs/a/b.png",
		"s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCY@s3.example.com/bucket/key?x#y",
		"s3://KEY:SE%2FCRET@[::1]:9000/b/",
		"S3://host/bucket",
		"s3://u:p@h:0/b/k",
		"s3://h:99999/b/k",
		"s3://a@b@c/d@e/f",
		"http://example.com/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseS3URL(raw)
		stripped := StripUserinfo(raw)
		if err != nil {
			return
		}
		shown := u.String()
		again, err := ParseS3URL(shown)
		if err != nil {
			t.Fatalf("ParseS3URL(%q) = %+v, whose String %q does not parse: %v", raw, u, shown, err)
		}
		u.AccessKey, u.SecretKey = "", ""
		if again != u {
			t.Fatalf("ParseS3URL(%q) = %+v; String %q parses to %+v", raw, u, shown, again)
		}
		if secret := u0(raw).SecretKey; len(secret) >= 6 && !strings.Contains(shown, secret) {
			if strings.Contains(stripped, secret) {
				t.Fatalf("StripUserinfo(%q) = %q shows the secret", raw, stripped)
			}
		}
	})
}

// u0 parses raw, ignoring the error.
func u0(raw string) S3URL {
	u, _ := ParseS3URL(raw)
	return u
}

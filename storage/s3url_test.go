package storage

import (
	"strings"
	"testing"
)

func TestParseS3URL(t *testing.T) {
	tests := []struct {
		raw     string
		want    S3URL
		str     string // want String(); "" when as raw
		wantErr string // substring of the error; "" for success
	}{
		{raw: "s3://s3.example.com/bucket/path/to/thumb.png",
			want: S3URL{Host: "s3.example.com", Bucket: "bucket", Key: "path/to/thumb.png"}},
		{raw: "s3://minio.local:9000/b/k.jpg",
			want: S3URL{Host: "minio.local", Port: 9000, Bucket: "b", Key: "k.jpg"}},
		{raw: "S3://HOST/b/k", str: "s3://HOST/b/k",
			want: S3URL{Host: "HOST", Bucket: "b", Key: "k"}},
		{raw: "s3://host/bucket", str: "s3://host/bucket/",
			want: S3URL{Host: "host", Bucket: "bucket"}},
		{raw: "s3://host/bucket/",
			want: S3URL{Host: "host", Bucket: "bucket"}},
		{raw: "s3://host/bucket/folder/sub/",
			want: S3URL{Host: "host", Bucket: "bucket", Key: "folder/sub/"}},
		{raw: "s3://127.0.0.1:7070/b/thumb@2x 100%.png?x#y",
			want: S3URL{Host: "127.0.0.1", Port: 7070, Bucket: "b", Key: "thumb@2x 100%.png?x#y"}},
		{raw: "s3://[::1]:9000/b/k",
			want: S3URL{Host: "::1", Port: 9000, Bucket: "b", Key: "k"}},
		{raw: "s3://[fe80::1]/b/k",
			want: S3URL{Host: "fe80::1", Bucket: "b", Key: "k"}},
		{raw: "s3://AKIAEXAMPLE:s3cr%2Ft+x%40y@host:443/b/k", str: "s3://host:443/b/k",
			want: S3URL{Host: "host", Port: 443, Bucket: "b", Key: "k", AccessKey: "AKIAEXAMPLE", SecretKey: "s3cr/t+x@y"}},

		{raw: "https://host/b/k", wantErr: `scheme "https" is not s3`},
		{raw: "host/b/k", wantErr: "not an s3:// URL"},
		{raw: "", wantErr: "not an s3:// URL"},
		{raw: "s3:///bucket/key", wantErr: "no host"},
		{raw: "s3://", wantErr: "no host"},
		{raw: "s3://:9000/b/k", wantErr: "no host"},
		{raw: "s3://host", wantErr: "no bucket"},
		{raw: "s3://host/", wantErr: "no bucket"},
		{raw: "s3://host//key", wantErr: "no bucket"},
		{raw: "s3://host:99999/b/k", wantErr: "invalid port"},
		{raw: "s3://host:0/b/k", wantErr: "invalid port"},
		{raw: "s3://host:x/b/k", wantErr: "invalid port"},
		{raw: "s3://host:/b/k", wantErr: "empty port"},
		{raw: "s3://::1/b/k", wantErr: "IPv6"},
		{raw: "s3://[::1/b/k", wantErr: "unterminated"},
		{raw: "s3://KEY@host/b/k", wantErr: "KEY:SECRET"},
		{raw: "s3://:SECRETVALUE@host/b/k", wantErr: "KEY:SECRET"},
		{raw: "s3://KEY:%zzSECRETVALUE@host/b/k", wantErr: "percent-encoded secret"},
		{raw: "s3://host/bad%bucket/k", wantErr: "invalid bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseS3URL(tt.raw)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseS3URL(%q) = %+v, want an error with %q", tt.raw, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRETVALUE") {
					t.Errorf("error %q repeats the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseS3URL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParseS3URL(%q) = %+v, want %+v", tt.raw, got, tt.want)
			}
			str := tt.str
			if str == "" {
				str = tt.raw
			}
			if got.String() != str {
				t.Errorf("String() = %q, want %q", got.String(), str)
			}
			if got.SecretKey != "" && strings.Contains(got.String(), got.SecretKey) {
				t.Errorf("String() %q contains the secret", got.String())
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for _, tt := range []struct {
		u    S3URL
		want string
	}{
		{S3URL{Host: "h"}, "h"},
		{S3URL{Host: "h", Port: 80}, "h:80"},
		{S3URL{Host: "::1"}, "[::1]"},
		{S3URL{Host: "::1", Port: 9000}, "[::1]:9000"},
	} {
		if got := tt.u.HostPort(); got != tt.want {
			t.Errorf("%+v.HostPort() = %q, want %q", tt.u, got, tt.want)
		}
	}
}

func TestStripUserinfo(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"s3://h/b/k", "s3://h/b/k"},
		{"s3://K:S@h:9/b/k@2x.png", "s3://h:9/b/k@2x.png"},
		{"s3://K:S@h", "s3://h"},
		{"K:S@h/b", "[unparsable URL]"},
	} {
		if got := StripUserinfo(tt.raw); got != tt.want {
			t.Errorf("StripUserinfo(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestKeyHint(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"", ""},
		{"short", "…"},
		{"AKIAIOSFODNN7EXAMPLE", "AKIA…"},
	} {
		if got := KeyHint(tt.key); got != tt.want {
			t.Errorf("KeyHint(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

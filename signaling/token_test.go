package signaling

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"
)

// jwtExpiring is an unsigned JWT-shaped token whose exp is at.
func jwtExpiring(at time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, at.Unix())))
	return "e30." + payload + ".sig"
}

func TestNextToken(t *testing.T) {
	fresh, stale := jwtExpiring(time.Now().Add(time.Hour)), jwtExpiring(time.Now().Add(-time.Minute))
	refreshed := jwtExpiring(time.Now().Add(10 * time.Minute))
	failing := TokenFunc(func(context.Context) (string, error) { return "", errors.New("endpoint down") })
	tests := []struct {
		name      string
		source    TokenSource
		refreshed string
		want      string
		wantErr   error
	}{
		{"source gives a fresh token", StaticToken(fresh), refreshed, fresh, nil},
		{"source token expired: the refreshed one", StaticToken(stale), refreshed, refreshed, nil},
		{"source down: the refreshed one", failing, refreshed, refreshed, nil},
		{"source token expired, nothing refreshed", StaticToken(stale), "", "", ErrTokenExpired},
		{"source token expired, refreshed nearly expired", StaticToken(stale), jwtExpiring(time.Now().Add(10 * time.Second)), "", ErrTokenExpired},
		{"opaque token passes", StaticToken("opaque"), "", "opaque", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRoom(RoomOptions{Tokens: tc.source})
			r.refreshed = tc.refreshed
			got, err := r.nextToken(context.Background())
			if got != tc.want || (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("nextToken = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

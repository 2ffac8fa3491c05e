package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/livekit/protocol/auth"
)

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token")
	key := fs.String("api-key", "", "LiveKit API `key` (the token's issuer)")
	secret := fs.String("api-secret", "", "LiveKit API `secret` the token is signed with")
	room := fs.String("room", "", "`room` to join")
	identity := fs.String("identity", "", "participant `identity` of the device")
	name := fs.String("name", "", "participant display `name` (optional)")
	ttl := fs.Duration("ttl", 6*time.Hour, "how long the token is valid")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	for _, req := range []struct{ flag, value string }{
		{"--api-key", *key}, {"--api-secret", *secret}, {"--room", *room}, {"--identity", *identity},
	} {
		if req.value == "" {
			return usageError{fs: fs, err: fmt.Errorf("token: %s is required", req.flag)}
		}
	}
	if *ttl <= 0 {
		return usageError{fs: fs, err: fmt.Errorf("token: --ttl %v: must be positive", *ttl)}
	}
	yes := true
	at := auth.NewAccessToken(*key, *secret).
		SetIdentity(*identity).
		SetValidFor(*ttl).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:       true,
			Room:           *room,
			CanPublish:     &yes,
			CanSubscribe:   &yes,
			CanPublishData: &yes,
		})
	if *name != "" {
		at.SetName(*name)
	}
	jwt, err := at.ToJWT()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, jwt)
	return err
}

// Command gameserver is a demo game server: it serves the demo game's GM
// functions (player.get, player.ban, player.grant_item) through the local
// croupier agent.
//
//	go run ./examples/gameserver --agent 127.0.0.1:19090 --instance gs-1
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/croupier/croupier/examples/demogame"
	"github.com/croupier/croupier/sdk"
)

func main() {
	agent := flag.String("agent", "", "agent SDK address (default $CROUPIER_AGENT_ADDR or 127.0.0.1:19090)")
	instance := flag.String("instance", "", "instance id (default $CROUPIER_INSTANCE_ID or hostname-pid)")
	players := flag.Int("players", 100, "number of players p1..pN")
	functions := flag.String("functions", "", "comma-separated subset of the demo functions to serve (default all)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	client := sdk.New(sdk.Options{AgentAddr: *agent, InstanceID: *instance, Logger: log})
	game := demogame.New(client.InstanceID(), *players)
	var only []string
	if *functions != "" {
		only = strings.Split(*functions, ",")
	}
	if err := game.Register(client, only...); err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		os.Exit(1)
	}
	log.Info("demo game server starting", "instance", client.InstanceID(), "players", *players)
	if err := client.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

package fleet

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/gse/launchpath"
)

// Agents report their build directories with every GetAgentFleets (at
// start and every 30 s); a report older than buildDirsTTL is forgotten, so
// an agent that went away stops deciding what fleets may be created.
const (
	buildDirsTTL = 5 * time.Minute
	// maxBuildDirAgents bounds the book; agents are authenticated, so this
	// only caps memory.
	maxBuildDirAgents = 10000
)

// buildDirBook remembers, per agent, the scope, labels and build
// directories it last reported. It lives in this server node's memory: an
// agent connected to another node is not consulted, which is safe because
// the agent itself refuses the launch (launchpath.Resolve before exec).
type buildDirBook struct {
	mu     sync.Mutex
	agents map[string]agentBuildDirs
}

type agentBuildDirs struct {
	gameID, env string
	labels      map[string]string
	dirs        []string
	seen        time.Time
}

// checkBuildDirs validates the build directories an agent reports.
func checkBuildDirs(dirs []string) error {
	if len(dirs) > launchpath.MaxDirs {
		return invalidArg("build_dirs: %d directories; at most %d are allowed", len(dirs), launchpath.MaxDirs)
	}
	for i, d := range dirs {
		if len(d) > launchpath.MaxBytes || !filepath.IsAbs(d) || filepath.Clean(d) != d || strings.ContainsRune(d, 0) {
			return invalidArg("build_dirs[%d] %s: give an absolute, clean path of at most %d bytes", i, launchpath.Quote(d), launchpath.MaxBytes)
		}
	}
	return nil
}

// note records an agent's report. An agent that reports no directories
// (an older agent) is not recorded: only its launch-time check applies.
func (b *buildDirBook) note(agentID, gameID, env string, labels map[string]string, dirs []string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.agents == nil {
		b.agents = map[string]agentBuildDirs{}
	}
	if len(dirs) == 0 {
		delete(b.agents, agentID)
		return
	}
	if _, ok := b.agents[agentID]; !ok && len(b.agents) >= maxBuildDirAgents {
		for id, a := range b.agents {
			if now.Sub(a.seen) > buildDirsTTL {
				delete(b.agents, id)
			}
		}
		if len(b.agents) >= maxBuildDirAgents {
			return
		}
	}
	b.agents[agentID] = agentBuildDirs{gameID: gameID, env: env, labels: maps.Clone(labels), dirs: slices.Clone(dirs), seen: now}
}

// hosts returns, by agent id in order, the recently seen agents that would
// host f (its scope, its agent_selector).
func (b *buildDirBook) hosts(f *croupierv1.Fleet, now time.Time) ([]string, map[string][]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]string{}
	for id, a := range b.agents {
		if now.Sub(a.seen) > buildDirsTTL {
			delete(b.agents, id)
			continue
		}
		if a.gameID == f.GetGameId() && a.env == f.GetEnv() && selects(f.GetAgentSelector(), a.labels) {
			out[id] = a.dirs
		}
	}
	return slices.Sorted(maps.Keys(out)), out
}

// checkLaunchPaths refuses a fleet whose launch path lies outside the
// build directories of an agent that would host it. The agent would refuse
// to launch it anyway; refusing here tells the caller at once, and why.
func (s *Service) checkLaunchPaths(f *croupierv1.Fleet) error {
	ids, dirs := s.buildDirs.hosts(f, s.now())
	for i, sp := range f.GetRuntimeConfiguration().GetServerProcesses() {
		for _, id := range ids {
			if launchpath.Within(sp.GetLaunchPath(), dirs[id]) {
				continue
			}
			field := fmt.Sprintf("runtime_configuration.server_processes[%d].launch_path", i)
			e := newErr(codes.FailedPrecondition, CodeLaunchPathNotAllowed,
				"%s %s is outside the build directories of agent %s (%s): agents launch only executables under their build_dirs; deploy the game there (see docs/fleet.md, Trust model)",
				field, launchpath.Quote(sp.GetLaunchPath()), id, strings.Join(dirs[id], ", "))
			e.Details = map[string]string{"field": field, "agent_id": id, "build_dirs": strings.Join(dirs[id], ",")}
			return e
		}
	}
	return nil
}

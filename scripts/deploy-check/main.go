// Command deploy-check validates Switchboard's container files offline, with the loaders the
// tools themselves use:
//
//   - docker-compose.yml through compose-spec's Go loader (what `docker compose` runs):
//     schema, interpolation, anchors and merges, references between services
//     (depends_on, network_mode: service:..), volumes, and that every bind-mounted host
//     file exists;
//   - the Dockerfile through BuildKit's parser and instruction decoder (what
//     `docker build` runs), including its lint rules, and that every stage named in
//     COPY --from exists.
//
// Usage: deploy-check <repo root>. Exits non-zero with one line per problem.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: deploy-check <repo root>")
		os.Exit(2)
	}
	root := os.Args[1]
	var problems []string
	problems = append(problems, checkCompose(root)...)
	problems = append(problems, checkDockerfile(filepath.Join(root, "Dockerfile"))...)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "deploy-check:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func checkCompose(root string) []string {
	file := filepath.Join(root, "docker-compose.yml")
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(root),
		cli.WithOsEnv,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", file, err)}
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", file, err)}
	}
	var problems []string
	for name, svc := range project.Services {
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					problems = append(problems, fmt.Sprintf("service %s mounts %s, which does not exist", name, v.Source))
				}
			}
		}
		if svc.Image == "" && svc.Build == nil {
			problems = append(problems, fmt.Sprintf("service %s has neither image nor build", name))
		}
	}
	fmt.Printf("deploy-check: %s: %d services valid (%s)\n", filepath.Base(file), len(project.Services),
		strings.Join(project.ServiceNames(), ", "))
	return problems
}

func checkDockerfile(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", file, err)}
	}
	var problems []string
	for _, w := range ast.Warnings {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", file, w.Location.Start.Line, w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", file, line, rule, msg))
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		return append(problems, fmt.Sprintf("%s: %v", file, err))
	}
	named := map[string]bool{}
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" && !named[c.From] {
				problems = append(problems, fmt.Sprintf("%s:%d: COPY --from=%s names no earlier stage", file, c.Location()[0].Start.Line, c.From))
			}
		}
		if st.Name != "" {
			named[st.Name] = true
		}
	}
	last := stages[len(stages)-1]
	user := ""
	for _, cmd := range last.Commands {
		if u, ok := cmd.(*instructions.UserCommand); ok {
			user = u.User
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		problems = append(problems, fmt.Sprintf("%s: the final stage must run as a non-root USER (got %q)", file, user))
	}
	fmt.Printf("deploy-check: Dockerfile: %d stages, %d global ARGs, final stage %q runs as %s\n",
		len(stages), len(metaArgs), last.Name, user)
	return problems
}

package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// sourceFlags are the inputs every command that reads config shares.
type sourceFlags struct {
	files     []string
	namespace string
}

func (s *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&s.files, "file", "f", nil, "config file, folder (recursive) or - for stdin; repeatable")
	cmd.Flags().StringVarP(&s.namespace, "namespace", "n", "default", "namespace of documents that name none, and of the workload for explain/run")
}

func (s *sourceFlags) compile(cmd *cobra.Command, version uint64, opts ...compile.Option) (*compile.Result, error) {
	if len(s.files) == 0 {
		return nil, usageError("no config given: pass -f FILE, -f FOLDER or -f -")
	}
	res, err := compile.Paths(s.files, config.Options{Namespace: s.namespace, Stdin: cmd.InOrStdin()}, version, opts...)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return res, nil
}

func newValidateCommand() *cobra.Command {
	var src sourceFlags
	var output string
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Check ServiceEntry and related config as Istio would, plus cross-document analysis",
		Long: "validate loads the given config, reports every error and warning with file:line and field, " +
			"and exits 0 when there is no error, 1 when there are errors (or warnings with --strict), 2 for usage or I/O failures.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("-o must be text or json, not %q", output)
			}
			res, err := src.compile(cmd, 1, compile.WithoutSnapshot())
			if err != nil {
				return err
			}
			errs, warns, infos := diag.Split(res.Diagnostics)
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					Documents int               `json:"documents"`
					Errors    []diag.Diagnostic `json:"errors"`
					Warnings  []diag.Diagnostic `json:"warnings"`
					// Info holds notes such as skipped non-Istio documents; absent when there are none.
					Info []diag.Diagnostic `json:"info,omitempty"`
				}{res.Documents, nonNil(errs), nonNil(warns), infos}); err != nil {
					return &exitError{code: 2, err: err}
				}
			} else {
				for _, d := range res.Diagnostics {
					fmt.Fprintln(out, d)
				}
				fmt.Fprintf(out, "%d documents in %d files: %d errors, %d warnings", res.Documents, res.Files, len(errs), len(warns))
				if len(infos) > 0 {
					fmt.Fprintf(out, ", %d skipped or noted", len(infos))
				}
				fmt.Fprintln(out)
			}
			if len(errs) > 0 || (strict && len(warns) > 0) {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	src.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 1) on warnings too")
	return cmd
}

func nonNil(ds []diag.Diagnostic) []diag.Diagnostic {
	if ds == nil {
		return []diag.Diagnostic{}
	}
	return ds
}

package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func dbCommand() *cli.Command {
	return &cli.Command{
		Name:  "db",
		Usage: "database maintenance",
		Subcommands: []*cli.Command{{
			Name:      "backup",
			Usage:     "write a consistent copy of the database to FILE while it is in use",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				e, err := newEnv(c)
				if err != nil {
					return err
				}
				if c.NArg() != 1 {
					return usagef("db backup: want one FILE")
				}
				dst := c.Args().First()
				if _, err := os.Stat(dst); err == nil {
					return usagef("db backup: %s exists; choose a new file", dst)
				}
				st, err := e.openStore(c.Context)
				if err != nil {
					return err
				}
				defer st.Close()
				if err := st.Backup(c.Context, dst); err != nil {
					return err
				}
				if err := os.Chmod(dst, 0o600); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, dst)
				return nil
			},
		}},
	}
}

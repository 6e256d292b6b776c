"""Study reports: tables, charts and the published numbers they are compared with."""

"""Rule sets kept in the store: what every instance runs, how a change is drafted, checked, previewed
against stored events, published and rolled back, and how the rules folder comes in.

- files.py: a rule set as file name -> text: names, sizes, digests, folders
- check.py: a set's problems (file, line, fix) and its examples, from the loader
- sync.py: each instance runs the published version; the folder is imported when it changes
- preview.py: the requests a draft would send for stored events, beside those the running rules send
- service.py: drafts, check, preview, publish, rollback, history; every action audited
- api.py, cli.py: /admin/rules... and `bridge rules ...`
"""

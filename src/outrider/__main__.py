from outrider.cli import app

app(prog_name="outrider")

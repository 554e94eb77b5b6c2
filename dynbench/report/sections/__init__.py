"""The report's sections, one module each: what a section shows and the note that says
how it was measured. Each module's ``section(frame)`` returns the section, or None when
the records hold nothing for it; :mod:`dynbench.report.render` puts them in order."""
